{#- Whether (eta2, phi2) lies in the isolation cone around (eta1, phi1). The cheap |delta eta|
    test runs first, so most pairs never compute delta phi. -#}
{% macro in_cone(eta1, phi1, eta2, phi2) -%}
    abs({{ eta2 }} - {{ eta1 }}) < {{ var('isolation_cone') }}
        and pow({{ eta2 }} - {{ eta1 }}, 2) + pow({{ delta_phi(phi1, phi2) }}, 2)
            < {{ var('isolation_cone') ** 2 }}
{%- endmacro %}
