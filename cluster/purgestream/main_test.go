package purgestream

import (
	"os"
	"testing"

	"github.com/cellar-cache/cellar/internal/leaktest"
)

func TestMain(m *testing.M) { os.Exit(leaktest.Main(m)) }
