{#- Sum of `field` over the objects of `collection` within the isolation cone of (eta, phi). -#}
{% macro cone_sum(collection, field, eta, phi) -%}
    aggregate(
        filter({{ collection }}, o -> {{ in_cone(eta, phi, 'o.Eta', 'o.Phi') }}),
        cast(0 as double),
        (total, o) -> total + o.{{ field }}
    )
{%- endmacro %}
