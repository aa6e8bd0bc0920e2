-- Countersign on PostgreSQL, schema version 1.
--
-- Every record is stored as the same JSON bytes the sled store keeps (`body`, bytea), keyed like
-- the sled trees, plus the columns SQL needs to find, lock and order rows. Applied in one
-- transaction by the store at start (`countersign db migrate` runs it alone); the version is
-- recorded in `schema_version`.

-- Text keys use the "C" collation: rows come back in the byte order sled keeps its keys in,
-- so a dump of either store lists the same lines in the same order.

-- Every commit that writes an agreement also sends NOTIFY countersign_changes with its id: the
-- other instances re-read it, so their in-memory search index stays current.
CREATE TABLE agreements (
    id text COLLATE "C" PRIMARY KEY,
    revision bigint NOT NULL,
    body bytea NOT NULL
);

CREATE TABLE versions (
    agreement_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (agreement_id, version)
);

-- Content-addressed: the key is the SHA-256 (hex) of the bytes, re-checked on every read.
CREATE TABLE documents (
    sha256 text COLLATE "C" PRIMARY KEY,
    bytes bytea NOT NULL
);

CREATE TABLE events (
    agreement_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (agreement_id, seq)
);

-- Each chain's head, locked (SELECT … FOR UPDATE) by every append: two instances appending to
-- one chain queue behind each other and never fork it. `mac` authenticates (id, seq, hash)
-- under the head key kept outside the database.
CREATE TABLE heads (
    agreement_id text COLLATE "C" PRIMARY KEY,
    seq bigint NOT NULL,
    hash text COLLATE "C" NOT NULL,
    mac text NOT NULL
);

CREATE TABLE outbox (
    id text COLLATE "C" PRIMARY KEY,
    agreement_id text COLLATE "C" NOT NULL,
    queued boolean NOT NULL,
    body bytea NOT NULL
);
CREATE INDEX outbox_queued ON outbox (id) WHERE queued;
CREATE INDEX outbox_agreement ON outbox (agreement_id, id);

CREATE TABLE apikeys (
    id text COLLATE "C" PRIMARY KEY,
    body bytea NOT NULL
);

CREATE TABLE apikey_last_used (
    id text COLLATE "C" PRIMARY KEY,
    at bigint NOT NULL
);

CREATE TABLE people (
    id text COLLATE "C" PRIMARY KEY,
    body bytea NOT NULL
);

CREATE TABLE invites (
    hash text COLLATE "C" PRIMARY KEY,
    body bytea NOT NULL
);

CREATE TABLE sessions (
    hash text COLLATE "C" PRIMARY KEY,
    person_id text COLLATE "C" NOT NULL,
    body bytea NOT NULL
);
CREATE INDEX sessions_person ON sessions (person_id);

-- Hash-chained; appends serialize on a transaction-scoped advisory lock.
CREATE TABLE seclog (
    seq bigint PRIMARY KEY,
    body bytea NOT NULL
);

CREATE TABLE vendors (
    id text COLLATE "C" PRIMARY KEY,
    revision bigint NOT NULL,
    body bytea NOT NULL
);

CREATE TABLE vendor_events (
    vendor_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (vendor_id, seq)
);

CREATE TABLE vendor_documents (
    sha256 text COLLATE "C" PRIMARY KEY,
    bytes bytea NOT NULL
);

CREATE TABLE webhook_endpoints (
    id text COLLATE "C" PRIMARY KEY,
    body bytea NOT NULL
);

CREATE TABLE webhook_deliveries (
    id text COLLATE "C" PRIMARY KEY,
    endpoint_id text COLLATE "C" NOT NULL,
    queued boolean NOT NULL,
    body bytea NOT NULL
);
CREATE INDEX webhook_deliveries_queued ON webhook_deliveries (id) WHERE queued;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
