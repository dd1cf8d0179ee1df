-- A copy of deploy/postgres/init-databases.sql (kustomize reads files only below the overlay);
-- tests/unit/test_deploy_config.py checks that the two stay the same.
-- One database and one role per service: each service owns its data.
-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d).
-- The passwords are for local runs only and match the database URLs in
-- deploy/compose/core.yaml and deploy/k8s/overlays/dev/kustomization.yaml; a real
-- deployment creates its roles with secrets of its own.
-- No role may connect to another service's database.

CREATE ROLE members LOGIN PASSWORD 'members-dev-only';
CREATE DATABASE members OWNER members;
REVOKE ALL ON DATABASE members FROM PUBLIC;

CREATE ROLE content LOGIN PASSWORD 'content-dev-only';
CREATE DATABASE content OWNER content;
REVOKE ALL ON DATABASE content FROM PUBLIC;

CREATE ROLE events LOGIN PASSWORD 'events-dev-only';
CREATE DATABASE events OWNER events;
REVOKE ALL ON DATABASE events FROM PUBLIC;

CREATE ROLE billing LOGIN PASSWORD 'billing-dev-only';
CREATE DATABASE billing OWNER billing;
REVOKE ALL ON DATABASE billing FROM PUBLIC;

CREATE ROLE analytics LOGIN PASSWORD 'analytics-dev-only';
CREATE DATABASE analytics OWNER analytics;
REVOKE ALL ON DATABASE analytics FROM PUBLIC;
