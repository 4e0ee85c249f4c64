-- One database per service (DESIGN.md: no service reads another's database).
CREATE DATABASE intake;
CREATE DATABASE sla_engine;
CREATE DATABASE reporting;
