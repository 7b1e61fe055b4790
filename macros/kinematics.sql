{#- Delta phi wrapped into [-pi, pi): the reference wrapped at 2 pi and lost cones across +-pi. -#}
{% macro delta_phi(phi1, phi2) -%}
    (pmod({{ phi2 }} - {{ phi1 }} + pi(), 2 * pi()) - pi())
{%- endmacro %}

{% macro delta_r(eta1, phi1, eta2, phi2) -%}
    sqrt(pow({{ eta2 }} - {{ eta1 }}, 2) + pow({{ delta_phi(phi1, phi2) }}, 2))
{%- endmacro %}

{#- Sum of `field` over the objects of `collection` within the isolation cone of (eta, phi).
    The cheap |delta eta| test runs first, so most pairs never compute delta phi. -#}
{% macro cone_sum(collection, field, eta, phi) -%}
    aggregate(
        filter({{ collection }}, o -> abs(o.Eta - {{ eta }}) < {{ var('isolation_cone') }}
            and pow(o.Eta - {{ eta }}, 2) + pow({{ delta_phi(phi, 'o.Phi') }}, 2)
                < {{ var('isolation_cone') ** 2 }}),
        cast(0 as double),
        (total, o) -> total + o.{{ field }}
    )
{%- endmacro %}

{#- The three isolation values of candidate `c` with transverse momentum c.<pt> (PHYSICS.md).
    A charged candidate's own track is in its cone, hence the -1 in its ChPFIso; neutral
    candidates have no track of their own. Empty cones give zero. -#}
{% macro isolation_fields(c, pt, charged) -%}
    {{ cone_sum('tracks', 'PT', c ~ '.Eta', c ~ '.Phi') }} / {{ c }}.{{ pt }}
        {%- if charged %} - 1{% endif %} as ChPFIso,
    {{ cone_sum('photons', 'ET', c ~ '.Eta', c ~ '.Phi') }} / {{ c }}.{{ pt }} as GammaPFIso,
    {{ cone_sum('neutral_hadrons', 'ET', c ~ '.Eta', c ~ '.Phi') }} / {{ c }}.{{ pt }} as NeuPFIso
{%- endmacro %}
