-- ArgoCD health of a kubevision.io InferenceEndpoint: Healthy while Ready is True, Degraded when it
-- failed or its spec was rejected, Progressing while the InferenceService rolls out.
local hs = { status = "Progressing", message = "Waiting for the kubevision operator" }
if obj.status == nil then
  return hs
end
local status = obj.status
if obj.metadata.generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for the operator to see generation " .. obj.metadata.generation
  return hs
end
local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
local message = status.message or status.phase or "Pending"
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  message = ready.message
elseif ready ~= nil and ready.reason ~= nil then
  message = ready.reason
end
hs.message = message
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
elseif status.phase == "Failed" or (ready ~= nil and ready.status == "False" and ready.reason == "InvalidSpec") then
  hs.status = "Degraded"
elseif ready == nil and status.phase == "Ready" then
  hs.status = "Healthy"
end
return hs
