/** What tests of stages and runners use instead of Kafka and the Schema Registry. */
export { createMemoryCodec, type MemoryCodec, type MemoryCodecOptions } from './memory-codec.js';
export {
  kafkaError,
  kafkaErrorCodes,
  MemoryConsumer,
  MemoryDriver,
  MemoryTransactionalProducer,
  type DriverEvent,
  type DriverOperation,
  type Hold,
  type Interceptor,
  type KafkaClientError,
  type MemoryDriverOptions,
  type OperationCall,
  type StoredRecord,
  type TestRecord,
} from './memory-driver.js';
