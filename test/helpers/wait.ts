/** Kept here so that tests import their helpers from one folder; the code is in harness/, which bench/ shares. */
export * from '../../harness/wait.ts';
