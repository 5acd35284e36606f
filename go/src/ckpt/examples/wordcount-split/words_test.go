package main

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// wordsVectors: input bytes and the words examples/wordcount/corpus.ts's
// words(new TextDecoder().decode(bytes)) gives on Node 20, all in hex.
var wordsVectors = []struct {
	input string
	words []string
}{
	{"", []string{}},
	{"202020", []string{}},
	{"6261727269657220736e617073686f742065706f6368", []string{"62617272696572", "736e617073686f74", "65706f6368"}},
	{"20206c65616420616e6420747261696c2020", []string{"6c656164", "616e64", "747261696c"}},
	{"746162097365700a6c696e650d0a656e64", []string{"746162", "736570", "6c696e65", "656e64"}},
	{"61c2a062e19a8063e2808064e2808a65e280a866e280a967e280af68e2819f69e380806aefbbbf6b", []string{"61", "62", "63", "64", "65", "66", "67", "68", "69", "6a", "6b"}},
	{"6e6fc28573706c6974", []string{"6e6fc28573706c6974"}},
	{"760b740c66", []string{"76", "74", "66"}},
	{"7a65726fe2808b7769647468", []string{"7a65726fe2808b7769647468"}},
	{"6d6978656420c3bc6ec3af63c3b664c3a92077c3b672647320e6bca2e5ad9720f09f988020656d6f6a69", []string{"6d69786564", "c3bc6ec3af63c3b664c3a9", "77c3b6726473", "e6bca2e5ad97", "f09f9880", "656d6f6a69"}},
	{"efbbbf68656c6c6f20776f726c64", []string{"68656c6c6f", "776f726c64"}},
	{"efbbbfefbbbf61", []string{"61"}},
	{"e282", []string{"efbfbd"}},
	{"e28220", []string{"efbfbd"}},
	{"61e2826220", []string{"61efbfbd62"}},
	{"c0af", []string{"efbfbdefbfbd"}},
	{"eda080", []string{"efbfbdefbfbdefbfbd"}},
	{"f0908080", []string{"f0908080"}},
	{"f09080", []string{"efbfbd"}},
	{"f4908080", []string{"efbfbdefbfbdefbfbdefbfbd"}},
	{"ff6120fe62", []string{"efbfbd61", "efbfbd62"}},
	{"e0a0", []string{"efbfbd"}},
	{"c2", []string{"efbfbd"}},
	{"61c2", []string{"61efbfbd"}},
	{"c2c3a9", []string{"efbfbdc3a9"}},
	{"f8888080806120", []string{"efbfbdefbfbdefbfbdefbfbdefbfbd61"}},
}

func TestWordsAgreeWithTheTypeScriptSplitTask(t *testing.T) {
	for _, v := range wordsVectors {
		input, err := hex.DecodeString(v.input)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{}
		for _, w := range v.words {
			b, err := hex.DecodeString(w)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, string(b))
		}
		got := words(input)
		if got == nil {
			got = []string{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("words(%s) = %q, want %q", v.input, got, want)
		}
	}
}

func TestPartitionOfAcceptsSplitTasksOnly(t *testing.T) {
	for id, want := range map[string]int{"split-0": 0, "split-1": 1, "split-12": 12} {
		if got, err := partitionOf(id); err != nil || got != want {
			t.Errorf("partitionOf(%q) = %d, %v", id, got, err)
		}
	}
	if task, err := taskFor("sink"); err != nil || task == nil {
		t.Errorf("taskFor(sink): %v", err)
	}
	if _, err := taskFor("count-0"); err == nil {
		t.Error("taskFor(count-0) accepted")
	}
	for _, id := range []string{"count-0", "sink", "split-", "split-x", "split--1", "split-01", "split-0 "} {
		if _, err := partitionOf(id); err == nil {
			t.Errorf("partitionOf(%q) accepted", id)
		}
	}
}

func TestFlagsNeedWhatTheWorkerNeeds(t *testing.T) {
	for _, name := range []string{"CKPT_COORDINATORS", "CKPT_NATS_URL", "CKPT_JOB", "CKPT_WORDCOUNT_TASKS", "CKPT_STATE", "CKPT_WORKER_ID"} {
		t.Setenv(name, "")
	}
	if _, err := parseFlags([]string{"--tasks", "split-0"}); err == nil {
		t.Error("flags without a coordinator accepted")
	}
	c, err := parseFlags([]string{"--coordinator", "a:1,b:2", "--nats", "nats://n:4222", "--tasks", "split-0", "--state-dir", "/tmp/wc"})
	if err != nil || c.state != "file:///tmp/wc" || c.job != "wordcount" {
		t.Errorf("parsed %+v, %v", c, err)
	}
}
