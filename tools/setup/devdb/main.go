// Command devdb runs an embedded FerretDB v1 (a MongoDB wire-protocol server on a SQLite backend) so that
// meshmart's dev loop and tests talk to a real Mongo-wire server on machines without a MongoDB binary.
//
// Usage: devdb -listen 127.0.0.1:27017 -dir /abs/path/to/data
// It prints "devdb ready <addr>" on stdout once the listener accepts connections, and stops on SIGINT/SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only when DEVDB_PPROF is set

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", ".cache/devdb/data", "directory for the SQLite files (created if missing)")
	logLevel := flag.String("log-level", "warn", "FerretDB log level: debug, info, warn, error")
	flag.Parse()

	// FerretDB allocates per command (BSON, sjson, SQL): with Go's default GOGC=100 the collector took ~10% of
	// devdb's CPU under PlaceOrder load. A dev database can spend memory instead; GOGC still overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	// Profiling the database under load (go tool pprof http://ADDR/debug/pprof/profile): off unless asked for.
	if addr := os.Getenv("DEVDB_PPROF"); addr != "" {
		go func() { log.Printf("devdb: pprof: %v", http.ListenAndServe(addr, nil)) }()
	}

	abs, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatalf("devdb: -dir %q: %v", *dir, err)
	}
	// FerretDB's SQLite backend refuses to start when the directory is missing.
	if err := os.MkdirAll(abs, 0o755); err != nil {
		log.Fatalf("devdb: -dir %q: %v", abs, err)
	}

	// FerretDB listens on a private Unix socket; clients reach it through devdb's relay (writeorder.go), which
	// makes each single-document write atomic as on MongoDB.
	sockDir, err := os.MkdirTemp("", "devdb-")
	if err != nil {
		log.Fatalf("devdb: %v", err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "ferretdb.sock")

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{Unix: sock},
		Handler:  "sqlite",
		// WAL (FerretDB's default) with synchronous=NORMAL: a commit no longer waits for an fsync (the WAL is
		// synced at checkpoints). A process crash, devdb's or a client's, loses nothing; only an OS crash or
		// power cut may drop the last commits, and the file never corrupts. Right for a dev/test database, not
		// for data that matters.
		SQLiteURL: "file:" + abs + "/?_pragma=synchronous(normal)",
		Logger:    newLogger(*logLevel),
	})
	if err != nil {
		log.Fatalf("devdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// Open the public port only once FerretDB accepts, so callers can wait on one line of output.
	for {
		select {
		case err := <-done:
			log.Fatalf("devdb: stopped before ready: %v", err)
		default:
		}
		conn, err := net.DialTimeout("unix", sock, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("devdb: -listen %q: %v", *listen, err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go relay(ln, func() (net.Conn, error) { return net.Dial("unix", sock) })
	go keepIDIndexes(ctx, abs, 250*time.Millisecond)
	fmt.Printf("devdb ready %s\n", *listen)

	if err := <-done; err != nil && ctx.Err() == nil {
		os.RemoveAll(sockDir)
		log.Fatalf("devdb: %v", err)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		log.Fatalf("devdb: -log-level %q: %v", level, err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
