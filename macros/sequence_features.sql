{#- The 19 particle features of PHYSICS.md, in order. -#}
{% macro sequence_features() -%}
    {{ return(['Energy', 'Px', 'Py', 'Pz', 'Pt', 'Eta', 'Phi', 'vtxX', 'vtxY', 'vtxZ',
               'ChPFIso', 'GammaPFIso', 'NeuPFIso', 'isChHad', 'isNeuHad', 'isGamma', 'isEle',
               'isMu', 'Charge']) }}
{%- endmacro %}
