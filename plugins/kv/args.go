package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/bbolt"
)

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// args is implemented by each handle's argument type.
type args interface {
	check() error
}

// keyArgs are the arguments of kv.get and kv.delete.
type keyArgs struct {
	Key string `json:"key"`
}

func (a keyArgs) check() error { return checkKey(a.Key) }

type putArgs struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

func (a putArgs) check() error {
	if err := checkKey(a.Key); err != nil {
		return err
	}
	if a.Value == nil {
		return errors.New(`"value" is required`)
	}
	return checkValue(*a.Value)
}

type listArgs struct {
	Prefix string `json:"prefix"`
	Limit  *int   `json:"limit"`
}

func (a listArgs) check() error {
	if a.Limit != nil && (*a.Limit < 1 || *a.Limit > maxListLimit) {
		return fmt.Errorf(`"limit" must be 1..%d, not %d`, maxListLimit, *a.Limit)
	}
	return nil
}

func (a listArgs) limit() int {
	if a.Limit == nil {
		return defaultListLimit
	}
	return *a.Limit
}

// casArgs: set Key to New if it currently holds Old, or, with Absent, if it
// does not exist.
type casArgs struct {
	Key    string  `json:"key"`
	Old    *string `json:"old"`
	Absent bool    `json:"absent"`
	New    *string `json:"new"`
}

func (a casArgs) check() error {
	if err := checkKey(a.Key); err != nil {
		return err
	}
	if (a.Old != nil) == a.Absent {
		return errors.New(`exactly one of "old" and "absent": true is required`)
	}
	if a.New == nil {
		return errors.New(`"new" is required`)
	}
	return checkValue(*a.New)
}

func checkKey(k string) error {
	switch {
	case k == "":
		return errors.New(`"key" is required and must not be empty`)
	case len(k) > bbolt.MaxKeySize:
		return fmt.Errorf(`"key" is %d bytes, limit %d`, len(k), bbolt.MaxKeySize)
	}
	return nil
}

func checkValue(v string) error {
	if len(v) > bbolt.MaxValueSize {
		return fmt.Errorf(`value is %d bytes, limit %d`, len(v), bbolt.MaxValueSize)
	}
	return nil
}

// decodeArgs parses a handle's JSON arguments strictly (no unknown fields, no
// trailing data) and checks them. Errors name the handle.
func decodeArgs[T args](handle string, raw []byte) (T, error) {
	var a T
	if err := decodeJSON(raw, &a); err != nil {
		return a, fmt.Errorf("%s: arguments: %w", handle, err)
	}
	if err := a.check(); err != nil {
		return a, fmt.Errorf("%s: arguments: %w", handle, err)
	}
	return a, nil
}

func decodeJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("want a JSON object, got nothing")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
