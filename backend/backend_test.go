package backend

import (
	"errors"
	"strings"
	"testing"
)

func TestChooseOrder(t *testing.T) {
	t.Setenv(EnvVar, "go")
	if c := Choose(""); c.Config != "go" || c.Reason != "$"+EnvVar {
		t.Errorf("with $%s=go: %+v", EnvVar, c)
	}
	if c := Choose("xla:cuda"); c.Config != "xla:cuda" || c.Name() != "xla" {
		t.Errorf("requested xla:cuda: %+v", c)
	}
	t.Setenv(EnvVar, "")
	c := Choose("auto")
	if len(InstalledPlugins()) == 0 && c.Config != "go" {
		t.Errorf("no PJRT plugin installed, got %+v, want go", c)
	}
	t.Logf("auto choice here: %+v (plugins %v)", c, InstalledPlugins())
}

func TestUnavailableBackendIsAnError(t *testing.T) {
	_, err := New(Choice{Config: "nosuch", Reason: "requested"})
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "go") {
		t.Fatalf("err = %v, want an error naming the backend and listing the compiled-in ones", err)
	}
	if len(InstalledPlugins()) == 0 {
		_, err := New(Choice{Config: "xla:cpu", Reason: "requested"})
		if err == nil || !strings.Contains(err.Error(), "never downloads") {
			t.Fatalf("xla without a plugin: err = %v, want a clear error", err)
		}
		t.Log(err)
	}
	b, err := New(Choice{Config: "go"})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(Describe(b, Choice{Config: "go", Reason: "test"}))
}

func TestCatchTurnsPanicsIntoErrors(t *testing.T) {
	want := errors.New("boom")
	if err := Catch(func() { panic(want) }); !errors.Is(err, want) {
		t.Errorf("Catch(panic(err)) = %v", err)
	}
	if err := Catch(func() { panic("text") }); err == nil || err.Error() != "text" {
		t.Errorf("Catch(panic(string)) = %v", err)
	}
	if err := Catch(func() {}); err != nil {
		t.Errorf("Catch(no panic) = %v", err)
	}
}
