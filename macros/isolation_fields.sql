{#- Isolation of lepton candidate `c` (with transverse momentum c.<pt>, its own track among the
    event's) against the event's pre-selected tracks, photons and neutral hadrons: a loop per
    candidate, cheap for the few candidates an event has. -#}
{% macro isolation_fields(c, pt) -%}
    {{ isolation_ratios(
        cone_sum('tracks', 'PT', c ~ '.Eta', c ~ '.Phi'),
        cone_sum('photons', 'ET', c ~ '.Eta', c ~ '.Phi'),
        cone_sum('neutral_hadrons', 'ET', c ~ '.Eta', c ~ '.Phi'),
        c ~ '.' ~ pt, '1') }}
{%- endmacro %}
