package main

// FerretDB v1.24.2's SQLite backend indexes _id as `_ferretdb_sjson->"_id"` but looks documents up by
// `_ferretdb_sjson->'$._id' = ?` (metadata.IDColumn): SQLite matches an index on an expression only when
// the expressions are the same, so every find/update/delete by _id scans and JSON-parses the whole table
// (EXPLAIN QUERY PLAN says SCAN). The cost grows with the collection: orders, reservations, payments and
// ledger grow with every order. The same bug on FerretDB's PostgreSQL backend: FerretDB/FerretDB#4646.
//
// keepIDIndexes adds, beside FerretDB's own, an index on the exact expression its queries use, to every
// collection table of every database in dir, and keeps doing so for collections created later. The index
// is ours, not FerretDB's: listIndexes does not show it, and it goes away with its table.

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses ("sqlite")
)

// idIndexSuffix names our index: "<table>_devdb_id_path".
const idIndexSuffix = "_devdb_id_path"

// missingIDIndexes lists FerretDB's collection tables in one database file that lack our _id index.
const missingIDIndexes = `SELECT c.table_name FROM _ferretdb_collections c
WHERE NOT EXISTS (SELECT 1 FROM sqlite_master m WHERE m.type = 'index' AND m.name = c.table_name || '` + idIndexSuffix + `')`

// ensureIDIndexes adds the missing _id indexes in one database file; returns how many it created.
func ensureIDIndexes(ctx context.Context, file string) (int, error) {
	// mode=rw: never create a file FerretDB has just dropped. Opened per pass and closed: a dropped
	// database's file is unlinked, and a connection held open would keep the old one alive.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	rows, err := db.QueryContext(ctx, missingIDIndexes)
	if err != nil {
		return 0, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}

	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+idIndexSuffix, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
	}
	return len(tables), nil
}

// keepIDIndexes runs ensureIDIndexes over every database in dir now and then every interval until ctx ends.
// A collection created meanwhile is scanned until the next pass: slower, never wrong.
func keepIDIndexes(ctx context.Context, dir string, interval time.Duration) {
	pass := func() {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, f := range files {
			// A database being created or dropped right now has no metadata table yet or no file any more.
			if _, err := ensureIDIndexes(ctx, f); err != nil && ctx.Err() == nil && !transient(err) {
				log.Printf("devdb: _id index for %s: %v", filepath.Base(f), err)
			}
		}
	}
	pass()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pass()
		}
	}
}

// transient: the file or its metadata table is not there (a database being created or dropped).
func transient(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no such table") || strings.Contains(s, "unable to open database file")
}
