{#- One sequence row for object `o` (with isolation fields); massless four-momentum from
    (pt, Eta, Phi). `sort_key` = -deltaR to the selected lepton, so an ascending sort puts the
    farthest particle first and the lepton last. -#}
{% macro sequence_row(o, pt, vertex, flags, charge) -%}
    struct(
        -{{ delta_r('selected_lepton.Eta', 'selected_lepton.Phi', o ~ '.Eta', o ~ '.Phi') }}
            as sort_key,
        cast({{ o }}.{{ pt }} * cosh({{ o }}.Eta) as float) as Energy,
        cast({{ o }}.{{ pt }} * cos({{ o }}.Phi) as float) as Px,
        cast({{ o }}.{{ pt }} * sin({{ o }}.Phi) as float) as Py,
        cast({{ o }}.{{ pt }} * sinh({{ o }}.Eta) as float) as Pz,
        cast({{ o }}.{{ pt }} as float) as Pt,
        cast({{ o }}.Eta as float) as Eta,
        cast({{ o }}.Phi as float) as Phi,
        cast({{ vertex[0] }} as float) as vtxX,
        cast({{ vertex[1] }} as float) as vtxY,
        cast({{ vertex[2] }} as float) as vtxZ,
        cast({{ o }}.ChPFIso as float) as ChPFIso,
        cast({{ o }}.GammaPFIso as float) as GammaPFIso,
        cast({{ o }}.NeuPFIso as float) as NeuPFIso,
        cast({{ flags[0] }} as float) as isChHad,
        cast({{ flags[1] }} as float) as isNeuHad,
        cast({{ flags[2] }} as float) as isGamma,
        cast({{ flags[3] }} as float) as isEle,
        cast({{ flags[4] }} as float) as isMu,
        cast({{ charge }} as float) as Charge
    )
{%- endmacro %}
