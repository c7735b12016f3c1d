version 1.0

# Count the words of an attached text file; the counts come back as a file.
workflow word_count {
  input {
    File text
  }
  call count { input: text = text }
  output {
    File counts = count.counts
  }
}

task count {
  input {
    File text
  }
  command <<<
    tr -s '[:space:]' '\n' < ~{text} | sort | uniq -c | sort -rn > counts.txt
  >>>
  output {
    File counts = "counts.txt"
  }
}
