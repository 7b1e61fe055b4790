{#- Delta phi wrapped into [-pi, pi): the reference wrapped at 2 pi and lost cones across +-pi. -#}
{% macro delta_phi(phi1, phi2) -%}
    (pmod({{ phi2 }} - {{ phi1 }} + pi(), 2 * pi()) - pi())
{%- endmacro %}
