package etcdstore

// SetBeforeTxn makes s run f after it read a commit's log counters and
// just before it sends the commit's Txn, for a test to change what the
// Txn compares.
func SetBeforeTxn(s *Store, f func()) { s.beforeTxn = f }
