// `npm run stack`: only the local Kafka + Postgres, held up until Ctrl-C (handy while developing).
import { launchStack } from './launch.ts';

const stack = await launchStack();
console.log(`KAFKA_BROKERS=${stack.kafkaBrokers}\nDATABASE_URL=${stack.databaseUrl}`);
const stop = () => void stack.stop().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setInterval(() => undefined, 1 << 30);
