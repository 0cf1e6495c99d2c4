/**
 * The task catalog: every task type, once. Adding a type means writing its definition
 * file and listing it here; the producer, workers, sweeper, status, CLI, configuration
 * and metrics pick it up from this list.
 */
import { ValidationError, type FieldIssue } from '../contract/validation-error.js';
import { followUpSurvey } from './follow-up-survey.js';
import { routeCallback } from './route-callback.js';
import { scheduleReminder } from './schedule-reminder.js';
import { sendEmail } from './send-email.js';
import type { TaskDefinition, TaskSettings } from './task-definition.js';
import { updateCrm } from './update-crm.js';
import { updateTicket } from './update-ticket.js';

export const catalog = [sendEmail, updateCrm, scheduleReminder, updateTicket, routeCallback, followUpSurvey] as const;

export type TaskType = (typeof catalog)[number]['type'];
export type AnyTaskDefinition = TaskDefinition<unknown, TaskSettings, TaskType>;

export const taskTypes: readonly TaskType[] = catalog.map((definition) => definition.type);

const definitions: readonly AnyTaskDefinition[] = catalog as readonly AnyTaskDefinition[];
const byType = new Map<string, AnyTaskDefinition>(definitions.map((definition) => [definition.type, definition]));

export function isTaskType(value: string): value is TaskType {
  return byType.has(value);
}

export function taskDefinition(type: TaskType): AnyTaskDefinition {
  return byType.get(type)!;
}

/** Every definition, in catalog order (the same array each call: do not modify it). */
export function allTaskDefinitions(): readonly AnyTaskDefinition[] {
  return definitions;
}

/** The settings of one type in force for a deployment. */
export interface TaskConfig {
  enabled: boolean;
  attempts: number;
  settings: TaskSettings;
}

export interface TaskOverride {
  enabled?: boolean;
  attempts?: number;
  /** Durations in milliseconds, by setting name (see each definition's settingDescriptions). */
  settings?: TaskSettings;
}

export type TaskOverrides = Partial<Record<TaskType, TaskOverride>>;
export type TaskConfigs = ReadonlyMap<TaskType, TaskConfig>;

export const MAX_ATTEMPTS = 100;

/**
 * Merges overrides into the catalog's defaults. Throws a ValidationError naming each bad
 * field (`tasks.send_email.attempts`), so a typo in a type or setting name is caught.
 */
export function resolveTaskConfigs(overrides: TaskOverrides = {}): TaskConfigs {
  const issues: FieldIssue[] = [];
  for (const type of Object.keys(overrides)) {
    if (!isTaskType(type))
      issues.push({ path: `tasks.${type}`, message: `unknown task type; expected one of ${taskTypes.join(', ')}` });
  }
  const configs = new Map<TaskType, TaskConfig>();
  for (const definition of allTaskDefinitions()) {
    const override = overrides[definition.type] ?? {};
    const path = `tasks.${definition.type}`;
    const attempts = override.attempts ?? definition.defaults.attempts;
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > MAX_ATTEMPTS) {
      issues.push({ path: `${path}.attempts`, message: `expected an integer from 1 to ${MAX_ATTEMPTS}` });
    }
    const settings: TaskSettings = { ...definition.defaults.settings };
    for (const [name, value] of Object.entries(override.settings ?? {})) {
      if (!(name in settings)) {
        issues.push({
          path: `${path}.settings.${name}`,
          message: `unknown setting; expected one of ${Object.keys(settings).join(', ')}`,
        });
      } else if (!Number.isFinite(value) || value < 0) {
        issues.push({ path: `${path}.settings.${name}`, message: 'expected a duration of 0 ms or more' });
      } else {
        settings[name] = value;
      }
    }
    configs.set(definition.type, { enabled: override.enabled ?? true, attempts, settings });
  }
  if (issues.length) throw new ValidationError('task configuration', issues);
  return configs;
}
