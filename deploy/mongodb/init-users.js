// deploy/mongodb/init-users.js: creates one MongoDB user per service, with readWrite on its own database only.
// Run by the mongo image's entrypoint from /docker-entrypoint-initdb.d with mongosh, authenticated as the root
// user, ONCE: on the first start with an empty data volume. Changing a password later means deleting the
// volume (dev) or running db.changeUserPassword (see deploy/README.md).
// The passwords arrive as environment variables from the <svc>-mongodb Secrets (deploy/base, never committed).
for (const service of ["identity", "catalog", "orders", "payment"]) {
  const variable = `${service.toUpperCase()}_PASSWORD`;
  const pwd = process.env[variable];
  if (!pwd) throw new Error(`init-users.js: ${variable} is empty; its Secret ${service}-mongodb has no password`);
  // A user lives in (and authenticates against) its own database: authSource is that database.
  db.getSiblingDB(service).createUser({ user: service, pwd, roles: [{ role: "readWrite", db: service }] });
  print(`init-users.js: user ${service} can read and write database ${service} only`);
}
