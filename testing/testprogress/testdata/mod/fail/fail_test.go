package fail

import "testing"

func TestPasses(t *testing.T) { t.Log("passing quietly") }

func TestFails(t *testing.T) {
	t.Run("sub", func(t *testing.T) { t.Error("the reason it failed") })
}
