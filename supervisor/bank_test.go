package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/protocol"
)

// Concurrent bank.open calls on one account, each with its own balance,
// from clients on the socket: exactly one opens it, every other gets
// account_exists, and the balance is the winner's. An open that
// overwrote would make or destroy money.
func TestConcurrentOpensOneWins(t *testing.T) {
	h := start(t, 2, nil)
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const accounts, opens = 8, 8
	for a := range accounts {
		account := "acct" + strconv.Itoa(a)
		var mu sync.Mutex
		var won []int64
		var wg sync.WaitGroup
		for i := range opens {
			balance := int64(100*a + i + 1)
			wg.Go(func() {
				_, err := c.Exec(ctx, "bank.open", demo.OpenArgs{Account: account, Balance: balance})
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, balance)
					mu.Unlock()
				case !errors.Is(err, &protocol.Error{Code: demo.CodeAccountExists}):
					t.Errorf("open %s with %d: %v, want success or account_exists", account, balance, err)
				}
			})
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("%s: %d opens succeeded (balances %v), want exactly one", account, len(won), won)
		}
		v, err := c.Get(ctx, demo.AccountsPath+"."+account)
		if err != nil {
			t.Fatalf("get %s: %v", account, err)
		}
		if got, want := string(v.Entries[0].Value), fmt.Sprint(won[0]); got != want {
			t.Fatalf("%s holds %s, want the winning open's %s", account, got, want)
		}
	}
}
