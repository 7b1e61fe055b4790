"""The application over the stages: the pipeline (a library), the CLI, the console, the report
and the dbt runner. It may import any stage; no stage imports it."""
