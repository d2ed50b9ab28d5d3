// Command hello is built by the kernel lab's tests with WithGoBinary and run
// in the guest.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("hello from %s\n", os.Getenv("SARU_KERNELLAB"))
}
