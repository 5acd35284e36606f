/**
 * Writes `src/gen/descriptor.ts`, the contract of `proto/` in protobuf.js's
 * JSON form, which the gRPC services and the codecs load at run time
 * instead of parsing the `.proto` files (`make gen` runs this).
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { descriptorJson, parseProtoFiles } from './files.js';

const target = join(dirname(fileURLToPath(import.meta.url)), '..', 'gen', 'descriptor.ts');
const json = descriptorJson(parseProtoFiles());
writeFileSync(
  target,
  '// Code generated from proto/ by src/proto/write-descriptor.ts (make gen). DO NOT EDIT.\n' +
    '/** The ckpt.v1 contract in protobuf.js JSON form. */\n' +
    `export const DESCRIPTOR_JSON = ${JSON.stringify(json)};\n`,
);
process.stdout.write(`wrote ${target} (${json.length} bytes of JSON)\n`);
