{#- Isolation from a struct `s` of cone sums (track_sum, photon_sum, neutral_hadron_sum). -#}
{% macro isolation_from_sums(s, pt, charged) -%}
    {{ isolation_ratios(s ~ '.track_sum', s ~ '.photon_sum', s ~ '.neutral_hadron_sum', pt,
                        charged) }}
{%- endmacro %}
