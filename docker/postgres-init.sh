#!/bin/sh
# First start of the PostgreSQL volume: Label Studio gets its own role and database beside the app's.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<EOSQL
CREATE ROLE labelstudio LOGIN PASSWORD '$POSTGRES_PASSWORD';
CREATE DATABASE labelstudio OWNER labelstudio;
EOSQL
