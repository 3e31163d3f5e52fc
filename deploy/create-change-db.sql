-- The built-in change service's database, beside Airflow's (RELEASE_MGMT_CHANGE_DB).
CREATE DATABASE release_mgmt_changes;
