-- One database per service (DESIGN.md: no service reads another's database), each with two roles:
--   <db>_owner owns the schema and runs the migrations (the *-migrate containers, the Kubernetes Jobs);
--   <db>_app   is what the service runs as: it reads and writes rows and cannot create, alter, drop or
--              truncate anything, so a SQL injection or a stolen service password cannot change the schema.
-- Development passwords only (compose); docs/security.md says how an operator sets and rotates real ones.
\set ON_ERROR_STOP on

CREATE ROLE intake_owner LOGIN PASSWORD 'slm-dev';
CREATE ROLE intake_app LOGIN PASSWORD 'slm-dev';
CREATE ROLE sla_engine_owner LOGIN PASSWORD 'slm-dev';
CREATE ROLE sla_engine_app LOGIN PASSWORD 'slm-dev';
CREATE ROLE reporting_owner LOGIN PASSWORD 'slm-dev';
CREATE ROLE reporting_app LOGIN PASSWORD 'slm-dev';

CREATE DATABASE intake OWNER intake_owner;
CREATE DATABASE sla_engine OWNER sla_engine_owner;
CREATE DATABASE reporting OWNER reporting_owner;

-- The same grants in each database: the owner creates, the service role gets rows of whatever the owner
-- creates (default privileges), and nobody else gets anything.
\connect intake
REVOKE ALL ON DATABASE intake FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE intake TO intake_app;
ALTER SCHEMA public OWNER TO intake_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO intake_app;
ALTER DEFAULT PRIVILEGES FOR ROLE intake_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO intake_app;
ALTER DEFAULT PRIVILEGES FOR ROLE intake_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO intake_app;

\connect sla_engine
REVOKE ALL ON DATABASE sla_engine FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE sla_engine TO sla_engine_app;
ALTER SCHEMA public OWNER TO sla_engine_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO sla_engine_app;
ALTER DEFAULT PRIVILEGES FOR ROLE sla_engine_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sla_engine_app;
ALTER DEFAULT PRIVILEGES FOR ROLE sla_engine_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO sla_engine_app;

\connect reporting
REVOKE ALL ON DATABASE reporting FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE reporting TO reporting_app;
ALTER SCHEMA public OWNER TO reporting_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO reporting_app;
ALTER DEFAULT PRIVILEGES FOR ROLE reporting_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO reporting_app;
ALTER DEFAULT PRIVILEGES FOR ROLE reporting_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO reporting_app;
