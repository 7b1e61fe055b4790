{#- The three isolation values from cone sums (PHYSICS.md). A charged particle's own track is
    in its cone: `own_tracks` (SQL, 1 or 0) is subtracted from its ChPFIso; neutral particles
    have no track of their own. Empty cones give zero. -#}
{% macro isolation_ratios(track_sum, photon_sum, neutral_hadron_sum, pt, own_tracks) -%}
    {{ track_sum }} / {{ pt }} - {{ own_tracks }} as ChPFIso,
    {{ photon_sum }} / {{ pt }} as GammaPFIso,
    {{ neutral_hadron_sum }} / {{ pt }} as NeuPFIso
{%- endmacro %}
