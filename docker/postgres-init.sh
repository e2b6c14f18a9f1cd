#!/bin/sh
# First start of the PostgreSQL volume: Label Studio gets its own role and database beside the app's.
# The password reaches SQL as a psql variable quoted by psql (:'name'), so quotes or backslashes in it
# cannot end the string literal.
set -e
psql -v ON_ERROR_STOP=1 -v labelstudio_password="$POSTGRES_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'EOSQL'
CREATE ROLE labelstudio LOGIN PASSWORD :'labelstudio_password';
CREATE DATABASE labelstudio OWNER labelstudio;
EOSQL
