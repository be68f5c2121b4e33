# queuectl in a container. Containers that share the /data volume share one queue:
#   docker volume create qdata
#   docker run -d --init --name workers -v qdata:/data queuectl worker start --count 4
#   docker run --rm -v qdata:/data queuectl enqueue '{"command":"echo hi"}'
# --init gives the container a PID 1 that reaps orphaned grandchildren of jobs; without it
# the worker would be PID 1 and such zombies would pile up.
# The volume must be a local one: SQLite's WAL needs shared memory and POSIX locks that
# network file systems (NFS, CIFS, 9p) do not provide reliably.
FROM denoland/deno:debian-2.9.6

WORKDIR /app
COPY deno.json deno.lock ./
COPY cli.ts mod.ts ./
COPY src ./src
RUN deno install --frozen && deno cache cli.ts src/pool/slot.ts

ENV QUEUECTL_HOME=/data
VOLUME ["/data"]
# The same command, runtime and permission flags as `deno task queuectl` (a test checks).
ENTRYPOINT ["deno", "run", "--v8-flags=--max-semi-space-size=1", "--allow-read", "--allow-write", "--allow-env", "--allow-sys=hostname,osRelease", "--allow-run", "cli.ts"]
CMD ["status"]
