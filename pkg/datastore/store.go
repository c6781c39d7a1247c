package datastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DBFile is the name of the database file inside a datastore version directory.
const DBFile = "datastore.db"

// FormatVersion is the version of the bucket layout inside DBFile.
const FormatVersion = "1"

var (
	bucketLive     = []byte("live")
	bucketMetadata = []byte("metadata")
	bucketPending  = []byte("pending")
	bucketInfo     = []byte("info")
	keyFormat      = []byte("format")
)

// ErrNothingToCommit is returned by Commit when a transaction holds no settings.
var ErrNothingToCommit = errors.New("tried to commit with no pending changes")

// ErrLocked is returned by Open when another process holds the datastore.
var ErrLocked = errors.New("datastore is locked by another process (is apiserver running?)")

// Store is an open datastore. It is safe for concurrent use; writes are
// serialized and each is one atomic, durable bbolt transaction.
type Store struct {
	db  *bolt.DB
	gen atomic.Uint64
}

// OpenOptions tune Open.
type OpenOptions struct {
	// Create makes a new database file when none exists. Without it a
	// missing file is an error, so that a daemon never silently starts on an
	// empty store.
	Create bool
	// LockTimeout bounds the wait for another process's lock (default 1s).
	LockTimeout time.Duration
	// ReadOnly opens the store without taking the write lock.
	ReadOnly bool
	// Unsynced skips the sync at each commit. It is only for filling a new
	// datastore that nothing can reach yet (storewolf before it links the
	// version directory): the caller calls Sync before making it reachable,
	// so a crash leaves at worst an unlinked directory, never a torn store.
	Unsynced bool
}

// Open opens the datastore in dir (a version directory, or the `current`
// link pointing at one).
func Open(ctx context.Context, dir string, opts OpenOptions) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, DBFile)
	if !opts.Create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("datastore %s does not exist (did storewolf run?): %w", dir, err)
		}
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly, NoSync: opts.Unsynced})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open datastore %s: %w", path, err)
	}
	s := &Store{db: db}
	if opts.ReadOnly {
		return s, s.checkFormat()
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLive, bucketMetadata, bucketPending, bucketInfo} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		info := tx.Bucket(bucketInfo)
		if v := info.Get(keyFormat); v == nil {
			return info.Put(keyFormat, []byte(FormatVersion))
		}
		return nil
	})
	if err == nil {
		err = s.checkFormat()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialize datastore %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) checkFormat() error {
	return s.db.View(func(tx *bolt.Tx) error {
		info := tx.Bucket(bucketInfo)
		if info == nil || tx.Bucket(bucketLive) == nil {
			return fmt.Errorf("datastore is corrupt: missing buckets")
		}
		if v := string(info.Get(keyFormat)); v != FormatVersion {
			return fmt.Errorf("datastore format %q is not supported (want %q)", v, FormatVersion)
		}
		return nil
	})
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Sync makes every commit so far durable; see OpenOptions.Unsynced.
func (s *Store) Sync() error {
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync datastore: %w", err)
	}
	return nil
}

// Generation increases every time live data or metadata changes; callers use
// it to invalidate caches of live data.
func (s *Store) Generation() uint64 { return s.gen.Load() }

// Section says where data is read or written: live, or a pending transaction.
type Section struct {
	tx string // "" means live
}

// Live is the committed data.
var Live = Section{}

// Pending is the named pending transaction.
func Pending(tx string) Section { return Section{tx: tx} }

// IsLive reports whether the section is live data.
func (c Section) IsLive() bool { return c.tx == "" }

// MaxTxNameLen bounds transaction names.
const MaxTxNameLen = 128

// CheckTxName reports whether name can name a pending transaction.
func CheckTxName(name string) error {
	if name == "" {
		return fmt.Errorf("transaction name is empty")
	}
	if len(name) > MaxTxNameLen {
		return fmt.Errorf("transaction name is longer than %d bytes", MaxTxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !validSegmentChar(c) || c == '/' {
			if c != '.' {
				return fmt.Errorf("transaction name %q: character %q is not allowed (allowed: a-z A-Z 0-9 _ - .)", name, c)
			}
		}
	}
	return nil
}

// bucket returns the bucket of a section, creating a pending one if create.
func (c Section) bucket(tx *bolt.Tx, create bool) (*bolt.Bucket, error) {
	if c.tx == "" {
		return tx.Bucket(bucketLive), nil
	}
	p := tx.Bucket(bucketPending)
	if create {
		return p.CreateBucketIfNotExists([]byte(c.tx))
	}
	return p.Bucket([]byte(c.tx)), nil
}

// GetPrefix returns every key of the section whose name starts with prefix
// (plain string prefix, as Bottlerocket's API does), with its raw JSON value.
func (s *Store) GetPrefix(ctx context.Context, c Section, prefix string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b, _ := c.bucket(tx, false)
		if b == nil {
			return nil
		}
		scanPrefix(b, prefix, func(k, v []byte) {
			out[string(k)] = append(json.RawMessage(nil), v...)
		})
		return nil
	})
	return out, err
}

func scanPrefix(b *bolt.Bucket, prefix string, fn func(k, v []byte)) {
	cur := b.Cursor()
	p := []byte(prefix)
	for k, v := cur.Seek(p); k != nil && strings.HasPrefix(string(k), prefix); k, v = cur.Next() {
		if v != nil {
			fn(k, v)
		}
	}
}

// Set writes all pairs into the section in one atomic transaction. Values
// must be valid JSON.
func (s *Store) Set(ctx context.Context, c Section, pairs map[Key]json.RawMessage) error {
	for k, v := range pairs {
		if !json.Valid(v) {
			return fmt.Errorf("value of %s is not valid JSON", k)
		}
	}
	if !c.IsLive() {
		if err := CheckTxName(c.tx); err != nil {
			return err
		}
	}
	return s.update(ctx, c.IsLive(), func(tx *bolt.Tx) error {
		b, err := c.bucket(tx, true)
		if err != nil {
			return err
		}
		for _, k := range sortedKeys(pairs) {
			if err := b.Put([]byte(k.name), pairs[k]); err != nil {
				return fmt.Errorf("write %s: %w", k, err)
			}
		}
		return nil
	})
}

// SetMetadata writes metadata entries (always live) in one transaction.
func (s *Store) SetMetadata(ctx context.Context, entries []Metadata) error {
	for _, m := range entries {
		if !json.Valid(m.Value) {
			return fmt.Errorf("metadata %s of %s is not valid JSON", m.Name, m.Key)
		}
	}
	return s.update(ctx, true, func(tx *bolt.Tx) error {
		md := tx.Bucket(bucketMetadata)
		for _, m := range entries {
			b, err := md.CreateBucketIfNotExists([]byte(m.Name.name))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(m.Key.name), m.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// Metadata is one metadata entry: metadata Name on data key Key.
type Metadata struct {
	Key   Key
	Name  Key
	Value json.RawMessage
}

// GetMetadata returns metadata md of key k, inherited from the most specific
// ancestor of k that has it; nil if none has.
func (s *Store) GetMetadata(ctx context.Context, md, k Key) (json.RawMessage, error) {
	var out json.RawMessage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMetadata).Bucket([]byte(md.name))
		if b == nil {
			return nil
		}
		for _, a := range k.Ancestors() {
			if v := b.Get([]byte(a.name)); v != nil {
				out = append(json.RawMessage(nil), v...)
			}
		}
		return nil
	})
	return out, err
}

// ListMetadata returns every entry of metadata md, by data key name, without
// inheritance.
func (s *Store) ListMetadata(ctx context.Context, md Key) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMetadata).Bucket([]byte(md.name))
		if b == nil {
			return nil
		}
		scanPrefix(b, "", func(k, v []byte) { out[string(k)] = append(json.RawMessage(nil), v...) })
		return nil
	})
	return out, err
}

// AllMetadata returns every metadata entry, without inheritance.
func (s *Store) AllMetadata(ctx context.Context) ([]Metadata, error) {
	var out []Metadata
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMetadata).ForEachBucket(func(name []byte) error {
			mk, err := ParseKey(MetaKey, string(name))
			if err != nil {
				return fmt.Errorf("corrupt metadata name: %w", err)
			}
			var ferr error
			scanPrefix(tx.Bucket(bucketMetadata).Bucket(name), "", func(k, v []byte) {
				dk, err := ParseKey(DataKey, string(k))
				if err != nil {
					ferr = fmt.Errorf("corrupt metadata key: %w", err)
					return
				}
				out = append(out, Metadata{Key: dk, Name: mk, Value: append(json.RawMessage(nil), v...)})
			})
			return ferr
		})
	})
	return out, err
}

// Transactions lists the names of pending transactions.
func (s *Store) Transactions(ctx context.Context) ([]string, error) {
	var out []string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEachBucket(func(name []byte) error {
			out = append(out, string(name))
			return nil
		})
	})
	return out, err
}

// Commit moves every settings.* key of pending transaction txName into live
// and removes the transaction, atomically: after a crash at any instant the
// transaction is either wholly committed or still wholly pending. It returns
// the committed key names, sorted, or ErrNothingToCommit.
func (s *Store) Commit(ctx context.Context, txName string) ([]string, error) {
	var committed []string
	err := s.update(ctx, true, func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketPending)
		b := p.Bucket([]byte(txName))
		if b == nil {
			return ErrNothingToCommit
		}
		live := tx.Bucket(bucketLive)
		var err error
		scanPrefix(b, "settings.", func(k, v []byte) {
			if err == nil {
				err = live.Put(append([]byte(nil), k...), append([]byte(nil), v...))
				committed = append(committed, string(k))
			}
		})
		if err != nil {
			return err
		}
		if len(committed) == 0 {
			// Drop the empty or settings-less transaction all the same.
			if derr := p.DeleteBucket([]byte(txName)); derr != nil {
				return derr
			}
			return ErrNothingToCommit
		}
		return p.DeleteBucket([]byte(txName))
	})
	if errors.Is(err, ErrNothingToCommit) {
		return nil, ErrNothingToCommit
	}
	if err != nil {
		return nil, err
	}
	return committed, nil
}

// DeleteTx removes a pending transaction and returns the names of the keys it
// held; a missing transaction gives an empty list.
func (s *Store) DeleteTx(ctx context.Context, txName string) ([]string, error) {
	removed := []string{}
	err := s.update(ctx, false, func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketPending)
		b := p.Bucket([]byte(txName))
		if b == nil {
			return nil
		}
		scanPrefix(b, "", func(k, _ []byte) { removed = append(removed, string(k)) })
		return p.DeleteBucket([]byte(txName))
	})
	return removed, err
}

// DeleteAllPending removes every pending transaction (storewolf does this at
// every boot).
func (s *Store) DeleteAllPending(ctx context.Context) error {
	return s.update(ctx, false, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketPending); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketPending)
		return err
	})
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, touchesLive bool, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(fn)
	if err == nil && touchesLive {
		s.gen.Add(1)
	}
	return err
}

func sortedKeys(m map[Key]json.RawMessage) []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].name < keys[j].name })
	return keys
}
