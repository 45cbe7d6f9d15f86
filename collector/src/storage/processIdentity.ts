/**
 * Whether a process recorded earlier still runs, as seen from this one. A pid alone
 * is not enough: after a reboot, or once the process is gone, the number is handed
 * to another process; and a pid from another machine or container (another PID
 * namespace) means nothing here. So a record carries the host name and, on Linux,
 * the boot, the PID namespace and the process's start time.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';

export interface MachineIdentity {
  bootId?: string;
  pidNamespace?: string;
  /** Clock ticks since boot when the process started. */
  processStart?: string;
}

export interface ProcessRecord {
  pid: number;
  hostname: string;
  machine: MachineIdentity;
}

/** The boot, PID namespace and start time of `pid` (this process's by default), as far as the system tells. */
export function machineIdentity(pid = process.pid): MachineIdentity {
  const identity: MachineIdentity = {};
  const bootId = readQuietly(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  const pidNamespace = readQuietly(() => readlinkSync('/proc/self/ns/pid'));
  const started = processStart(pid);
  if (bootId) identity.bootId = bootId;
  if (pidNamespace) identity.pidNamespace = pidNamespace;
  if (started) identity.processStart = started;
  return identity;
}

/** Whether the recorded process can be looked up from here: same machine and PID namespace (not another container), or a boot since. */
export function isSeenFromHere(record: ProcessRecord): boolean {
  if (record.hostname !== os.hostname()) return false;
  const here = machineIdentity();
  if (record.machine.bootId && here.bootId && record.machine.bootId !== here.bootId) return true; // rebooted since: certainly gone
  return !(record.machine.pidNamespace && here.pidNamespace && record.machine.pidNamespace !== here.pidNamespace);
}

/** Whether the recorded process still runs; undefined when it cannot be seen from here. */
export function isStillRunning(record: ProcessRecord): boolean | undefined {
  if (!isSeenFromHere(record)) return undefined;
  const here = machineIdentity();
  if (record.machine.bootId && here.bootId && record.machine.bootId !== here.bootId) return false;
  try {
    process.kill(record.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: a process with that pid exists (someone else's).
  }
  const started = processStart(record.pid);
  // The pid now belongs to a later process.
  if (record.machine.processStart && started && started !== record.machine.processStart) return false;
  return true;
}

/** Linux: the process's start time in clock ticks since boot (field 22 of /proc/PID/stat). */
function processStart(pid: number): string | undefined {
  const stat = readQuietly(() => readFileSync(`/proc/${pid}/stat`, 'utf8'));
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function readQuietly(read: () => string): string | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
