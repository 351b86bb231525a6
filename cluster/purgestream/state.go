package purgestream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// state is what a node remembers of the stream across restarts: the last
// sequence it applied, and which stream that sequence belongs to (a
// stream deleted and created again starts its sequences over).
type state struct {
	Stream  string    `json:"stream"`
	Created time.Time `json:"created"` // the stream's creation time (StreamInfo.Created)
	Applied uint64    `json:"applied"`
}

// loadState reads the state file; a missing file is the zero state.
func loadState(path string) (state, error) {
	var st state
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, fmt.Errorf("%s: undecodable (%v); starting from the stream's first event", path, err)
	}
	return st, nil
}

// saveState replaces the state file durably: a temporary file, synced,
// renamed over the old one, and the directory synced.
func saveState(path string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
