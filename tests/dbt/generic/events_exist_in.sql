{#- Events of this model missing from `to` (a relationship across layers). -#}
{% test events_exist_in(model, to) %}
select child.content_hash, child.entry
from {{ model }} as child
left anti join {{ to }} as parent
    on child.content_hash = parent.content_hash and child.entry = parent.entry
{% endtest %}
