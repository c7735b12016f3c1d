version 1.1

# Square each number in its own task (scatter), then add the squares up (gather).
workflow scatter_gather {
  input {
    Array[Int] numbers = [1, 2, 3]
  }
  scatter (n in numbers) {
    call square { input: n = n }
  }
  call add { input: values = square.result }
  output {
    Array[Int] squares = square.result
    Int total = add.total
  }
}

task square {
  input {
    Int n
  }
  command <<<
    echo $(( ~{n} * ~{n} ))
  >>>
  output {
    Int result = read_int(stdout())
  }
}

task add {
  input {
    Array[Int] values
  }
  command <<<
    total=0
    for v in ~{sep=" " values}; do total=$((total + v)); done
    echo "$total"
  >>>
  output {
    Int total = read_int(stdout())
  }
}
