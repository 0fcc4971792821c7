package main

// FerretDB v1 runs findAndModify, update and delete as a read (a query) followed by a separate write of the
// whole document by _id (internal/handler/msg_findandmodify.go, handler/common/update.go): two writers racing
// on one document both read the old version, and the second write undoes the first. So a conditional update
// such as {_id, stock: {$gte: n}} → {$inc: {stock: -n}} is not atomic there, while MongoDB applies every
// single-document write atomically. The services rely on MongoDB's guarantee (no application locks around
// one document's update), so devdb restores it: it sits in front of FerretDB as a Mongo-wire relay and lets
// only one read-modify-write command per database run at a time. Writes to one SQLite file are serialised
// by SQLite anyway; the relay only stretches that over FerretDB's read. Reads, inserts (atomic on their
// unique _id) and the other commands pass unhindered, and commands on other databases run in parallel.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"sync"

	"github.com/FerretDB/wire/wirebson"
)

const (
	opMsg            = 2013
	headerLen        = 16
	flagMoreToCome   = 1 << 1
	maxMessageLength = 48 << 20 // MongoDB's maxMessageSizeBytes
)

// readModifyWrite: the commands FerretDB applies as a query then a write.
var readModifyWrite = map[string]bool{"findAndModify": true, "findandmodify": true, "update": true, "delete": true}

// writeOrder hands out one mutex per database name.
type writeOrder struct {
	mu  sync.Mutex
	dbs map[string]*sync.Mutex
}

func (w *writeOrder) lock(db string) *sync.Mutex {
	w.mu.Lock()
	m := w.dbs[db]
	if m == nil {
		m = new(sync.Mutex)
		w.dbs[db] = m
	}
	w.mu.Unlock()
	m.Lock()
	return m
}

// relay accepts on ln and forwards each connection to upstream (FerretDB), serialising read-modify-write
// commands per database. It returns when ln is closed.
func relay(ln net.Listener, dial func() (net.Conn, error)) {
	order := &writeOrder{dbs: map[string]*sync.Mutex{}}
	for {
		client, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Printf("devdb: accept: %v", err)
			}
			return
		}
		go func() {
			upstream, err := dial()
			if err != nil {
				log.Printf("devdb: to FerretDB: %v", err)
				client.Close()
				return
			}
			newRelayConn(order, client, upstream).run()
		}()
	}
}

// relayConn is one client connection and its FerretDB connection. held maps the request id of each
// forwarded read-modify-write command to the database lock it holds until FerretDB's reply passes.
type relayConn struct {
	order            *writeOrder
	client, upstream net.Conn
	mu               sync.Mutex
	held             map[int32]*sync.Mutex
}

func newRelayConn(order *writeOrder, client, upstream net.Conn) *relayConn {
	return &relayConn{order: order, client: client, upstream: upstream, held: map[int32]*sync.Mutex{}}
}

func (c *relayConn) run() {
	done := make(chan struct{}, 2)
	go func() { c.requests(); done <- struct{}{} }()
	go func() { c.replies(); done <- struct{}{} }()
	<-done
	// Either side gone: end both, and free the locks of commands whose replies will never come.
	c.client.Close()
	c.upstream.Close()
	<-done
	c.mu.Lock()
	for id, m := range c.held {
		m.Unlock()
		delete(c.held, id)
	}
	c.mu.Unlock()
}

// requests forwards client → FerretDB, taking the database's lock before a read-modify-write command goes out.
func (c *relayConn) requests() {
	r := bufio.NewReaderSize(c.client, 64<<10)
	for {
		msg, err := readMessage(r)
		if err != nil {
			return
		}
		if db, ok := serialised(msg); ok {
			m := c.order.lock(db)
			c.mu.Lock()
			c.held[int32(binary.LittleEndian.Uint32(msg[4:8]))] = m
			c.mu.Unlock()
		}
		if _, err := c.upstream.Write(msg); err != nil {
			return
		}
	}
}

// replies forwards FerretDB → client, and frees the lock a reply answers once the client has it.
func (c *relayConn) replies() {
	r := bufio.NewReaderSize(c.upstream, 64<<10)
	for {
		msg, err := readMessage(r)
		if err != nil {
			return
		}
		_, err = c.client.Write(msg)
		responseTo := int32(binary.LittleEndian.Uint32(msg[8:12]))
		c.mu.Lock()
		if m := c.held[responseTo]; m != nil {
			delete(c.held, responseTo)
			m.Unlock()
		}
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// readMessage reads one whole wire message (header included).
func readMessage(r *bufio.Reader) ([]byte, error) {
	head, err := r.Peek(headerLen)
	if err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(head[0:4]))
	if n < headerLen || n > maxMessageLength {
		return nil, errors.New("bad message length")
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// serialised reports whether msg is a read-modify-write command that expects a reply, and its database.
// A fire-and-forget write (moreToCome, w:0) gets no reply to release a lock on, so it is not held.
func serialised(msg []byte) (string, bool) {
	if len(msg) < headerLen+5 || int32(binary.LittleEndian.Uint32(msg[12:16])) != opMsg {
		return "", false
	}
	if binary.LittleEndian.Uint32(msg[16:20])&flagMoreToCome != 0 {
		return "", false
	}
	// Sections follow the flags; the command is the kind-0 (body) section.
	for p := headerLen + 4; p < len(msg); {
		kind := msg[p]
		p++
		if p+4 > len(msg) {
			return "", false
		}
		size := int(binary.LittleEndian.Uint32(msg[p : p+4]))
		if size < 5 || p+size > len(msg) {
			return "", false
		}
		if kind != 0 {
			p += size
			continue
		}
		doc, err := wirebson.RawDocument(msg[p : p+size]).Decode()
		if err != nil || !readModifyWrite[doc.Command()] {
			return "", false
		}
		db, _ := doc.Get("$db").(string)
		return db, true
	}
	return "", false
}
