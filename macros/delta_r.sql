{#- Distance in (eta, phi), with delta phi wrapped (delta_phi). -#}
{% macro delta_r(eta1, phi1, eta2, phi2) -%}
    sqrt(pow({{ eta2 }} - {{ eta1 }}, 2) + pow({{ delta_phi(phi1, phi2) }}, 2))
{%- endmacro %}
