package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// qmp is one connection to QEMU's machine protocol, in command mode.
type qmp struct {
	conn net.Conn
	dec  *json.Decoder
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Event  string          `json:"event"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// dialQMP connects to the QMP socket, reads the greeting and leaves
// capabilities negotiation.
func dialQMP(ctx context.Context, path string) (*qmp, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	q := &qmp{conn: conn, dec: json.NewDecoder(conn)}
	stop := q.deadline(ctx)
	defer stop()
	var greeting qmpMessage
	if err := q.dec.Decode(&greeting); err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: read greeting: %w", err)
	}
	if greeting.QMP == nil {
		conn.Close()
		return nil, errors.New("qmp: no greeting")
	}
	if _, err := q.execute(ctx, "qmp_capabilities"); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// deadline makes ctx's end interrupt reads and writes; call the returned
// function when done.
func (q *qmp) deadline(ctx context.Context) func() {
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { q.conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		q.conn.SetDeadline(time.Time{})
	}
}

// execute runs one command and returns its "return" value; events that
// arrive meanwhile are skipped.
func (q *qmp) execute(ctx context.Context, command string) (json.RawMessage, error) {
	stop := q.deadline(ctx)
	defer stop()
	req, _ := json.Marshal(map[string]string{"execute": command})
	if _, err := q.conn.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	for {
		var m qmpMessage
		if err := q.dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", command, err)
		}
		switch {
		case m.Event != "":
			continue
		case m.Error != nil:
			return nil, fmt.Errorf("qmp %s: %s: %s", command, m.Error.Class, m.Error.Desc)
		case m.Return != nil:
			return m.Return, nil
		}
	}
}

func (q *qmp) close() error { return q.conn.Close() }

// qmpCommand connects, runs one command and disconnects.
func qmpCommand(ctx context.Context, path, command string) (json.RawMessage, error) {
	q, err := dialQMP(ctx, path)
	if err != nil {
		return nil, err
	}
	defer q.close()
	return q.execute(ctx, command)
}
