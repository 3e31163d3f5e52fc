"""The release console: pages inside Airflow's UI (the plugin's ``external_views``), served by the plugin's
own FastAPI app and authenticated by the UI's own session."""
