{#- Lepton candidates with their isolation, and the selected lepton: the highest-PT isolated
    candidate, electrons and muons together (the reference picked the larger Eta). Needs the
    pre-selected `tracks`, `photons` and `neutral_hadrons` columns in scope. -#}
{% macro isolated_candidates(candidates) -%}
    transform({{ candidates }}, c -> struct(
        c.PT as PT, c.Eta as Eta, c.Phi as Phi, c.Charge as Charge, c.IsEle as IsEle,
        {{ isolation_fields('c', 'PT', true) }}
    ))
{%- endmacro %}

{% macro selected_lepton(isolated) -%}
    sort_array(
        filter({{ isolated }}, c -> c.ChPFIso + c.GammaPFIso + c.NeuPFIso < {{ var('isolation_max') }}),
        false
    )[0]
{%- endmacro %}

{#- Rows of events not yet in this incremental model (all of them on a full refresh). -#}
{% macro only_new_ingests() -%}
    {% if is_incremental() %}
    where ingest_id not in (select distinct ingest_id from {{ this }})
    {% endif %}
{%- endmacro %}

{#- 80/20 by a hash of the event identity: adding events never moves an old one. -#}
{% macro split_of(content_hash, entry) -%}
    case when pmod(xxhash64({{ content_hash }}, {{ entry }}), 100) < {{ var('train_percent') }}
         then 'train' else 'test' end
{%- endmacro %}
