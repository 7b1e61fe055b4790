{#- Lepton candidates with their isolation. Needs the pre-selected `tracks`, `photons` and
    `neutral_hadrons` columns in scope. -#}
{% macro isolated_candidates(candidates) -%}
    transform({{ candidates }}, c -> struct(
        c.PT as PT, c.Eta as Eta, c.Phi as Phi, c.Charge as Charge, c.IsEle as IsEle,
        {{ isolation_fields('c', 'PT') }}
    ))
{%- endmacro %}
