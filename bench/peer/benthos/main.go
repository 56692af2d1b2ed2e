// The Benthos v4.27.0 peer of bench:peer: the stock binary cut down to the components the
// benchmark uses (HTTP server, Kafka, the pure processors, SQL with the lib/pq driver).
package main

import (
	"context"

	_ "github.com/benthosdev/benthos/v4/public/components/io"
	_ "github.com/benthosdev/benthos/v4/public/components/kafka"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
	_ "github.com/benthosdev/benthos/v4/public/components/sql/base"
	"github.com/benthosdev/benthos/v4/public/service"
	_ "github.com/lib/pq"
)

func main() {
	service.RunCLI(context.Background())
}
