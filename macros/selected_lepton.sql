{#- The selected lepton of isolated candidates: the highest-PT isolated candidate, electrons and
    muons together (the reference picked the larger Eta); null when none is isolated. -#}
{% macro selected_lepton(isolated) -%}
    sort_array(
        filter(
            {{ isolated }},
            c -> c.ChPFIso + c.GammaPFIso + c.NeuPFIso < {{ var('isolation_max') }}
        ),
        false
    )[0]
{%- endmacro %}
