package purge

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// EnvToken is the environment variable that supplies a purge token.
const EnvToken = "CELLAR_PURGE_TOKEN"

// TokenFile is the name of the generated token's file in the data
// directory.
const TokenFile = "purge-token"

// ResolveTokens returns the purge tokens in effect: the configured ones
// when there are any, else env (the value of CELLAR_PURGE_TOKEN) when it is
// not empty, else the token kept in dataDir/purge-token, generated at the
// first start (LoadOrCreateToken). It logs where the token comes from.
func ResolveTokens(configured []string, env, dataDir string, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(configured) > 0 {
		log.Info("purge tokens from the config file", "count", len(configured))
		return configured, nil
	}
	if env = strings.TrimSpace(env); env != "" {
		log.Info("purge token from the environment", "var", EnvToken, "fingerprint", Fingerprint(env))
		return []string{env}, nil
	}
	tok, created, err := LoadOrCreateToken(dataDir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, TokenFile)
	if created {
		log.Info("generated a purge token", "file", path, "fingerprint", Fingerprint(tok))
	} else {
		log.Info("purge token from file", "file", path, "fingerprint", Fingerprint(tok))
	}
	return []string{tok}, nil
}

// LoadOrCreateToken returns the token kept in dir/purge-token. When the
// file is missing or empty it generates a token (32 bytes from
// crypto/rand, base64url) and writes it atomically with mode 0600 (created
// true). A file readable by others is tightened to 0600.
func LoadOrCreateToken(dir string) (token string, created bool, err error) {
	path := filepath.Join(dir, TokenFile)
	if tok, err := ReadTokenFile(path); err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", false, fmt.Errorf("purge: restricting %s to mode 0600: %w", path, err)
			}
		}
		return tok, false, nil
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errEmptyToken) {
		return "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("purge: creating %s: %w", dir, err)
	}
	var raw [32]byte
	rand.Read(raw[:]) // never fails (crypto/rand)
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	f, err := os.CreateTemp(dir, TokenFile+".tmp*")
	if err != nil {
		return "", false, fmt.Errorf("purge: writing token: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(tok + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return "", false, fmt.Errorf("purge: writing token to %s: %w", path, err)
	}
	return tok, true, nil
}

var errEmptyToken = errors.New("purge: token file is empty")

// ReadTokenFile reads a token file: its first line, trimmed.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("purge: reading token: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if tok := strings.TrimSpace(line); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("%s: %w", path, errEmptyToken)
}
