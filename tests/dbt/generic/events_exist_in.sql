{#- Events of this model missing from `to` (a relationship across layers). -#}
{% test events_exist_in(model, to) %}
select child.source_file, child.entry
from {{ model }} as child
left anti join {{ to }} as parent
    on child.source_file = parent.source_file and child.entry = parent.entry
{% endtest %}
