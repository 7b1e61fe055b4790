{#- The three isolation values from cone sums (PHYSICS.md). A charged candidate's own track is
    in its cone, hence the -1 in its ChPFIso; neutral candidates have no track of their own.
    Empty cones give zero. -#}
{% macro isolation_ratios(track_sum, photon_sum, neutral_hadron_sum, pt, charged) -%}
    {{ track_sum }} / {{ pt }}{% if charged %} - 1{% endif %} as ChPFIso,
    {{ photon_sum }} / {{ pt }} as GammaPFIso,
    {{ neutral_hadron_sum }} / {{ pt }} as NeuPFIso
{%- endmacro %}
