package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/peernet/peernet/pluginsdk"
)

// bucket holds every key.
var bucket = []byte("kv")

// store is the plugin's state: the database, opened by Configure.
type store struct {
	mu sync.Mutex
	db *bbolt.DB
}

func newStore() *store { return &store{} }

func (s *store) config() pluginsdk.Config {
	return pluginsdk.Config{
		Name:    "kv",
		Version: version,
		Handlers: map[string]pluginsdk.Handler{
			"kv.get":    pluginsdk.HandlerFunc(s.get),
			"kv.put":    pluginsdk.HandlerFunc(s.put),
			"kv.delete": pluginsdk.HandlerFunc(s.delete),
			"kv.list":   pluginsdk.HandlerFunc(s.list),
			"kv.cas":    pluginsdk.HandlerFunc(s.cas),
		},
		Configure: s.configure,
	}
}

type storeConfig struct {
	// Dir holds the database file kv.db; created with mode 0700 if missing.
	Dir string `json:"dir"`
}

func (s *store) configure(_ context.Context, _ pluginsdk.Host, raw []byte) error {
	var cfg storeConfig
	if len(bytes.TrimSpace(raw)) == 0 {
		return errors.New(`kv: configuration missing: want {"dir": "/path/to/data"}`)
	}
	if err := decodeJSON(raw, &cfg); err != nil {
		return fmt.Errorf("kv: configuration: %w", err)
	}
	if cfg.Dir == "" {
		return errors.New(`kv: configuration: "dir" is required`)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("kv: creating data directory: %w", err)
	}
	// bbolt fsyncs every commit (NoSync is false), so an acknowledged write
	// survives a crash. The timeout turns a second instance on the same
	// directory into an error instead of a hang.
	db, err := bbolt.Open(filepath.Join(cfg.Dir, "kv.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("kv: opening database: %w", err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return fmt.Errorf("kv: initialising database: %w", err)
	}
	s.mu.Lock()
	s.db = db
	s.mu.Unlock()
	return nil
}

// close closes the database, if open. Safe to call more than once.
func (s *store) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
}

func (s *store) database() (*bbolt.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil, errors.New("kv: database is not open")
	}
	return s.db, nil
}

type getResult struct {
	Found bool   `json:"found"`
	Value string `json:"value"`
}

func (s *store) get(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	a, err := decodeArgs[keyArgs](req.Handle, req.Args)
	if err != nil {
		return nil, err
	}
	db, err := s.database()
	if err != nil {
		return nil, err
	}
	var r getResult
	err = db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucket).Get([]byte(a.Key)); v != nil {
			r = getResult{Found: true, Value: string(v)}
		}
		return nil
	})
	return marshal(r, err)
}

func (s *store) put(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	a, err := decodeArgs[putArgs](req.Handle, req.Args)
	if err != nil {
		return nil, err
	}
	db, err := s.database()
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(a.Key), []byte(*a.Value))
	})
	return marshal(struct{}{}, err)
}

func (s *store) delete(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	a, err := decodeArgs[keyArgs](req.Handle, req.Args)
	if err != nil {
		return nil, err
	}
	db, err := s.database()
	if err != nil {
		return nil, err
	}
	var deleted bool
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		deleted = b.Get([]byte(a.Key)) != nil
		return b.Delete([]byte(a.Key))
	})
	return marshal(struct {
		Deleted bool `json:"deleted"`
	}{deleted}, err)
}

type item struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type listResult struct {
	Items []item `json:"items"`
	// More reports that more keys match than Limit allowed.
	More bool `json:"more"`
}

func (s *store) list(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	a, err := decodeArgs[listArgs](req.Handle, req.Args)
	if err != nil {
		return nil, err
	}
	db, err := s.database()
	if err != nil {
		return nil, err
	}
	r := listResult{Items: []item{}}
	prefix := []byte(a.Prefix)
	err = db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(r.Items) == a.limit() {
				r.More = true
				break
			}
			r.Items = append(r.Items, item{Key: string(k), Value: string(v)})
		}
		return nil
	})
	return marshal(r, err)
}

type casResult struct {
	Swapped bool `json:"swapped"`
	// Found and Value describe the key after the operation.
	Found bool   `json:"found"`
	Value string `json:"value"`
}

func (s *store) cas(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	a, err := decodeArgs[casArgs](req.Handle, req.Args)
	if err != nil {
		return nil, err
	}
	db, err := s.database()
	if err != nil {
		return nil, err
	}
	var r casResult
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		cur := b.Get([]byte(a.Key))
		match := cur == nil && a.Absent || cur != nil && a.Old != nil && string(cur) == *a.Old
		if !match {
			r = casResult{Found: cur != nil, Value: string(cur)}
			return nil
		}
		r = casResult{Swapped: true, Found: true, Value: *a.New}
		return b.Put([]byte(a.Key), []byte(*a.New))
	})
	return marshal(r, err)
}

func marshal(v any, err error) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("kv: %w", err)
	}
	return json.Marshal(v)
}
