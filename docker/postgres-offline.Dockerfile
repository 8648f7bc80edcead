# PostgreSQL for docker-compose.yml on a machine that cannot pull `postgres:16` (no image
# registry, as in CI): Debian's PostgreSQL 15 on a base that .ci/compose-test.sh makes (a Debian
# root file system with the postgresql-15 package, imported as BASE). It honours what the compose
# file uses of the official image: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, a data volume
# at /var/lib/postgresql/data, and `pg_isready` for the health check.
ARG BASE
FROM ${BASE}
RUN mkdir -p /var/lib/postgresql/data /run/postgresql \
    && chown postgres:postgres /var/lib/postgresql/data /run/postgresql && chmod 700 /var/lib/postgresql/data
COPY postgres-offline-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
USER postgres
ENTRYPOINT ["postgres-entrypoint"]
