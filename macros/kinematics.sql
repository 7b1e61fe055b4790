{#- Delta phi wrapped into [-pi, pi): the reference wrapped at 2 pi and lost cones across +-pi. -#}
{% macro delta_phi(phi1, phi2) -%}
    (pmod({{ phi2 }} - {{ phi1 }} + pi(), 2 * pi()) - pi())
{%- endmacro %}

{% macro delta_r(eta1, phi1, eta2, phi2) -%}
    sqrt(pow({{ eta2 }} - {{ eta1 }}, 2) + pow({{ delta_phi(phi1, phi2) }}, 2))
{%- endmacro %}

{#- Whether (eta2, phi2) lies in the isolation cone around (eta1, phi1). The cheap |delta eta|
    test runs first, so most pairs never compute delta phi. -#}
{% macro in_cone(eta1, phi1, eta2, phi2) -%}
    abs({{ eta2 }} - {{ eta1 }}) < {{ var('isolation_cone') }}
        and pow({{ eta2 }} - {{ eta1 }}, 2) + pow({{ delta_phi(phi1, phi2) }}, 2)
            < {{ var('isolation_cone') ** 2 }}
{%- endmacro %}

{#- Sum of `field` over the objects of `collection` within the isolation cone of (eta, phi). -#}
{% macro cone_sum(collection, field, eta, phi) -%}
    aggregate(
        filter({{ collection }}, o -> {{ in_cone(eta, phi, 'o.Eta', 'o.Phi') }}),
        cast(0 as double),
        (total, o) -> total + o.{{ field }}
    )
{%- endmacro %}

{#- The three isolation values from cone sums (PHYSICS.md). A charged candidate's own track is
    in its cone, hence the -1 in its ChPFIso; neutral candidates have no track of their own.
    Empty cones give zero. -#}
{% macro isolation_ratios(track_sum, photon_sum, neutral_hadron_sum, pt, charged) -%}
    {{ track_sum }} / {{ pt }}{% if charged %} - 1{% endif %} as ChPFIso,
    {{ photon_sum }} / {{ pt }} as GammaPFIso,
    {{ neutral_hadron_sum }} / {{ pt }} as NeuPFIso
{%- endmacro %}

{#- Isolation of candidate `c` (with transverse momentum c.<pt>) against the event's
    pre-selected tracks, photons and neutral hadrons: for the few lepton candidates. -#}
{% macro isolation_fields(c, pt, charged) -%}
    {{ isolation_ratios(
        cone_sum('tracks', 'PT', c ~ '.Eta', c ~ '.Phi'),
        cone_sum('photons', 'ET', c ~ '.Eta', c ~ '.Phi'),
        cone_sum('neutral_hadrons', 'ET', c ~ '.Eta', c ~ '.Phi'),
        c ~ '.' ~ pt, charged) }}
{%- endmacro %}

{#- Isolation from a struct `s` of cone sums (track_sum, photon_sum, neutral_hadron_sum). -#}
{% macro isolation_from_sums(s, pt, charged) -%}
    {{ isolation_ratios(s ~ '.track_sum', s ~ '.photon_sum', s ~ '.neutral_hadron_sum', pt,
                        charged) }}
{%- endmacro %}
