"""The foundation every stage stands on: settings, the Spark session factory, table names, the
Delphes contract, the closed sets of names (samples, layers, models, engines, features) and the
error every stage raises. Nothing here imports a stage or the application."""
