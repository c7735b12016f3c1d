version 1.0

# Two tasks, the second reading the first one's file: split a sentence into sorted words,
# then count the distinct ones. No container, so it runs wherever the engine runs a task.
workflow count_words {
  input {
    String text = "pear apple fig apple"
  }
  call split_words { input: text = text }
  call count_distinct { input: words = split_words.words }
  output {
    File words = split_words.words
    Int distinct = count_distinct.n
  }
}

task split_words {
  input {
    String text
  }
  command <<<
    echo "~{text}" | tr ' ' '\n' | sort > words.txt
  >>>
  output {
    File words = "words.txt"
  }
  runtime {
    cpu: 1
    memory: "100 MB"
  }
}

task count_distinct {
  input {
    File words
  }
  command <<<
    sort -u "~{words}" | wc -l
  >>>
  output {
    Int n = read_int(stdout())
  }
  runtime {
    cpu: 1
    memory: "100 MB"
  }
}
