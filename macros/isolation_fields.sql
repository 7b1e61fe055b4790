{#- Isolation of candidate `c` (with transverse momentum c.<pt>) against the event's
    pre-selected tracks, photons and neutral hadrons: for the few lepton candidates. -#}
{% macro isolation_fields(c, pt, charged) -%}
    {{ isolation_ratios(
        cone_sum('tracks', 'PT', c ~ '.Eta', c ~ '.Phi'),
        cone_sum('photons', 'ET', c ~ '.Eta', c ~ '.Phi'),
        cone_sum('neutral_hadrons', 'ET', c ~ '.Eta', c ~ '.Phi'),
        c ~ '.' ~ pt, charged) }}
{%- endmacro %}
